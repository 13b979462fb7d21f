"""shelfwise.kiosk_demo."""
