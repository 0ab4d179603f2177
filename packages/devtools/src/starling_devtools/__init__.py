"""Tools for working on the Starling workspace as a whole: CI, the developer loop, measurements."""
