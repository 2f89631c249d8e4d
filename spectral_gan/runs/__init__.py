"""A run's directory on disk: its lock and the refusal to train over another run
(``directory.py``), and its ``status.json`` (``status.py``)."""
