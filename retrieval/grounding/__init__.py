"""Phrase grounding: the maps as pure maths (``maps``) and the grounder over images and bundle cases."""
