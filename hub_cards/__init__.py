"""Hub-facing pieces (`vitpose_plus.hub_cards`): model-card templates (markdown files with `string.Template`
placeholders, shipped as package data), `cards` (the card structure, renderer and validator), `catalog_cards` (the
cards of every catalog model) and `publish` (assemble a Hub folder and push it)."""
