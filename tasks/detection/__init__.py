"""Object detection: YOLO-style detector, COCO evaluation with pycocotools."""
