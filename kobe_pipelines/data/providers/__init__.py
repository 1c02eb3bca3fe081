"""Market-data providers behind one interface (`MarketDataProvider`)."""
