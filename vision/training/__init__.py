"""Training the defect classifier: data set, network, training loop, export.

Only this package imports PyTorch (the ``train`` extra), and only in
:mod:`vision.training.model`, :mod:`vision.training.train` and
:mod:`vision.training.export`; the data set (:mod:`vision.training.dataset`,
:mod:`vision.training.labels`, :mod:`vision.training.real`) needs the simulator and
the vision core only, so ``qc-station dataset`` runs on a station without torch.
"""
