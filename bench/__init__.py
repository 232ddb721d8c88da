"""Tools that measure Lighthouse (quality, speed, scale); they use the `kb` library and are not part of it."""
