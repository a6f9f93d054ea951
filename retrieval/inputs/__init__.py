"""What goes into the models: image files decoded, preprocessing, report text cleaned and split, text embedded."""
