"""Clustering personas: behavioral features per customer (`features.py`), clustering with the
choice of method and k (`fit.py`), plain-words descriptions (`describe.py`), comparison with
the previous run (`stability.py`), the report (`report.py`), past runs (`store.py`), and one
run start to end (`runs.py`)."""
