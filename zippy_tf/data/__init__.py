"""Data shared by every method: the bundled photographs, generated data sets, image folders, tfds builders."""
