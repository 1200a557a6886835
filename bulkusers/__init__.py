"""bulkusers: async bulk import, export, deactivation and deletion of Sisense users."""

from __future__ import annotations

__version__ = "0.1.0"
