"""Small helpers shared by the package and the tools.

Nothing is imported here: ``mmseg_dsnet.utils.fileio`` needs only the
standard library.
"""
