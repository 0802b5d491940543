"""Pretraining the detector before its first labelled round: starting weights grown from the
workspace's own photos, written as plain tensors that `pretrained=PATH` transfers into a detector."""
