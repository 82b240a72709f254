"""The renderer's constants: the Python twins of ``csrc/include/splatnet/constants.h`` (a test
checks they agree). Defined here, at the root, because more than the renderer needs them (PLY
export caps opacities at ``ALPHA_MAX``); ``splatnet.rendering.reference`` re-exports them."""

ALPHA_MAX = 0.99  # α = min(ALPHA_MAX, o · G)
ALPHA_MIN = 1.0 / 255.0  # a Gaussian with α < ALPHA_MIN is skipped at that pixel
T_MIN = 1e-4  # a blend that would take T below T_MIN is not done, and the pixel stops
EPS2D = 0.3  # dilation added to the 2D covariance (pixels²)
FOV_CLAMP = 1.3  # x/z, y/z clamped to 1.3× the half field of view for the Jacobian
DEPTH_EPS = 1e-10  # expected depth = Σ z α T / max(alpha, DEPTH_EPS)
TILE_SIZE = 16
