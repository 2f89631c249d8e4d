"""Development tooling of the repository (not in the wheel): the machine's description for
benchmarks and measurements (``hardware.py``), the digit-quality scoring of the default check
(``digit_quality.py``) and the generated sections of the docs (``doc_sections.py``)."""
