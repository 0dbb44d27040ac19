"""Values of the settings that name weights and input normalisations, torch-free, so a setting
is checked (`spurspec train`, a pipeline's plan) without importing torch. Reads and writes nothing."""

IMAGENET = "imagenet"  # the value of --pretrained that asks for the standard ImageNet weights
# Values of the `normalisation` setting: `imagenet` everywhere, or `study`: ISIC's statistics on
# ISIC (a dataset whose ingest source is "isic"), the same as `imagenet` elsewhere (chest films
# keep 0.485 / 0.229, the study's training value).
NORMALISATIONS = (IMAGENET, "study")
