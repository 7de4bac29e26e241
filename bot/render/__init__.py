"""Renderers: pure functions from domain data to Mattermost posts. They call nothing."""
