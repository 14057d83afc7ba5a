"""Model-card templates (markdown with `string.Template` placeholders) rendered by
`vitpose_plus.conversion.model_card`. Templates are data files; this module only marks the folder as a package so that
the templates can be shipped as package data."""
