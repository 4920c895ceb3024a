"""From images to a verified challenge submission (``clic submission``).

::

  images/ ─┬─► grid.run_grid ──────────────► cache/<set>-<hash>/<candidate>/<image>.<sha>.<ext>|.json
           │   (joblib or dask workers get      one bitstream + one RD record per cell,
           │    paths + candidate names;        atomic; finished cells are skipped
           │    codecs.get_codec: learned                │
           │    ladder via models/ (-refineN:            │
           │    latents refined, models.refine),         ▼
           │    classical via Pillow)            out/rd.csv  (image, candidate, family, rate_label,
           │                                      bytes, pixels, width, height, sse, msssim, enc_s, dec_s)
           │                                             │
           │                                             ▼
           │                         allocation.solve → allocate.solve_budget / solve_transparent
           │                                             │  one candidate per image + certificate
           │                                             ▼
           │                         package.package ──► out/submission/
           │                                               decoder/  decode.py (= decode_program.py)
           │                                                         [+ runtime/ ladders/ weights/ if learned]
           │                                               images/   <image>.<ext>, the chosen bitstreams
           │                                               manifest.json  choice, certificate, rd.csv sha256,
           │                                                              versions, decoder bytes
           │                                             │
           │                                             ▼
           └──────────────────────────► verify.verify: python -I decoder/decode.py images/ out/decoded/
                                          (fresh process, timed) → eval.score.score_folders on the PNGs;
                                          learned latents must be the encoder's, every image's PSNR
                                          its RD cell's (within rounding), else exit 2
                                                         │
                                                         ▼
                                         report.report ──► leaderboard.csv row, per_image.csv, rd.png

``run.run_submission`` chains the stages (and times them), once per target when
several are asked (``layout``: the CLIC 2021 zips); ``cli`` is the command line.  Expected failures raise :class:`~pipeline.errors.PipelineError`.
"""
