"""The paper's method: VGG-19 losses, masks, the matting Laplacian, L-BFGS, post-filter.

Submodules are imported on use (``from dpst.optim_reference import matting``) so that
importing the package stays cheap.
"""
