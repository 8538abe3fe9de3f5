"""The images: CIFAR-10 (``cifar``), a user's image folder (``imagefolder``), the example
photographs (``photos``), the tiled pool of images (``pool``) and resizing (``resize``).

Imports ``system`` and ``experiment``.
"""
