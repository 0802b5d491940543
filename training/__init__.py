"""The model side: detectors behind one interface (Ultralytics and torchvision families), the
training view written from the store, pure detection and clinical metrics, and the benchmark of
detector families with its report. Imports only the core `annotator`.
"""
