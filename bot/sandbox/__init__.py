"""The sandbox: every platform service emulated on loopback, the bot wired to them."""
