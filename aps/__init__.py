"""A thin session layer for Autodesk Platform Services."""
