"""FashionMNIST on disk and on the device: IDX files, where to find them, the stratified split and
folds, device-resident batches with batched augmentation, and tiny synthetic files for tests. No Ray."""
