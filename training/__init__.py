"""Training and held-out evaluation of every served model, on data the project generates itself.

    datasets/   seeded generators (DJ sets as audio, beat clips, multilingual chat, user
                interactions) and the on-disk cache they are kept in
    trainers/   one module per model family, in that model's own framework
    metrics.py  held-out metrics and their trivial baselines
    tracking.py every run as an MLflow run that registers a model version
    run.py      dataset -> fit -> evaluate -> log -> register (what `djserve train` calls)

Training reads the specs (`djserve.specs`) and the audio front end (`djserve.features`) and
never imports the gateway: what the models learn from is what the gateway computes.
"""
