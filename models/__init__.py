"""Networks used at inference: the feed-forward generator, segmenters, ONNX export."""
