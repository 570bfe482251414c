"""The image variants (augmentations) an embedding can be cached for; no torch needed."""

#: the dihedral group D4: identity, flips, rotations (counter-clockwise), transposes
VARIANTS = ("none", "hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "transverse")
AUGMENT_VARIANTS = {
    "none": ("none",),
    "flip": ("none", "hflip", "vflip"),
    "d4": VARIANTS,
}
