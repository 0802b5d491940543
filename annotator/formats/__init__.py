"""Label formats, one module each with its reader and writer side by side: Pascal VOC as
labelImg writes it (voc.py), YOLO text with data.yaml (yolo.py), COCO JSON (coco.py)."""
