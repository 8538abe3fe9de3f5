"""What is measured: the experiment's vocabulary (``vocabulary``), the config and its
validation (``config``) and the plan of points, stores and reads (``plan``).

Imports ``system`` and ``methods``.
"""
