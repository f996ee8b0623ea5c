"""One module per storage backend behind a narrow interface (`base.Provider`), and the registry."""
