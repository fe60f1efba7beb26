"""The application layer: the `studio` command (`studio_app.cli`) and the end-to-end demo (`studio_app.demo`).

It composes the packages (curate, synth, review_app, training) over the core (`studio`); nothing below it
imports it back. Commands get the run's options through a `studio.context.CommandContext`.
"""
