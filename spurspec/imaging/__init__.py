"""Image and mask handling: decoding (DICOM, JPEG/PNG, NIfTI), resizing to the training size,
RLE, boxes and coarse grids."""
