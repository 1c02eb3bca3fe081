"""Live checks of each phase on the embedded defaults (`kobe verify --phase N`)."""
