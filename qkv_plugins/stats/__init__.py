"""Attention statistics and pictures: recorded weights → maps → numbers (pure
functions over tensors; the layer catalog says how a layer's weights become
maps)."""
