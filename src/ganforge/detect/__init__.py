"""Real-versus-generated detection (`ganforge detect`): a classifier trained on real images against fakes from
ganforge runs, exports or folders, with the robustness augmentations of Wang et al. (CVPR 2020), its evaluation
per generator, and the FGSM and PGD attacks against it (Goodfellow et al. 2015; Madry et al. 2018).

config.py (DetectConfig) -> data.py (labelled images) -> augment.py -> networks.py -> train.py (the loop, run
folder and exact resume) -> score.py (probabilities), evaluate.py (accuracy, ROC AUC, AP), attack.py.
"""
