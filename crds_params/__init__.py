"""Parameter reference files shipped with jwst_asteroid_step (CRDS ``pars-*`` form).

Installed as ``jwst_asteroid_step.crds_params``; see README.md in this folder.
"""
