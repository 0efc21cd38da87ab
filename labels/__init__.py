"""Labels and masks, torch-free: the mask palette and mask files, the label policy (orphans,
merging, renumbering), one-pass preparation, pooled masks, label pictures, and where automatic
labels come from. Only the torch mask propagation to VGG-19's layers stays with the optimiser
(:mod:`dpst.optim_reference.masks`)."""
