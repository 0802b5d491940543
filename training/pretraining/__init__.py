"""Pretrained starts the tool makes itself, without internet: from its synthetic faces and from the
workspace's own unlabelled photos (self-supervised), cached with provenance."""
