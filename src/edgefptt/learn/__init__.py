"""The host side of the edge learner: sample files, device state images, the device's training
procedure (sample order, learning-rate schedule) and a golden reference of it.

docs/learner.md is the contract between these modules and the generated C.
"""
