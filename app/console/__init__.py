"""The ops console: server-rendered pages under /console on the ops API's tokens and services."""
