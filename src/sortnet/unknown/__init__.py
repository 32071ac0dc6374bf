"""'None of these': an out-of-distribution score per image and a threshold above which sortnet answers unknown.

scorer.py: the scorers (msp, energy, mahalanobis, knn) as a torch module stored in the model file;
threshold.py: the threshold from validation scores and its overrides; fit.py: fitting after training.

Usage:
    from sortnet.unknown.fit import fit_unknown
    scorer, spec, val_scores = fit_unknown(model, bundle, tta, device, dtype, temperature=1.3)
"""
