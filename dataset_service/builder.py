"""Dataset builds (filled in below the skeleton)."""


class BuildRunner:
    def __init__(self, settings, db):
        self.settings, self.db = settings, db

    def recover(self):
        pass

    def shutdown(self):
        pass
