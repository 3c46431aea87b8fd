"""keypoints."""
