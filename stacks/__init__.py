"""The deployable stacks; each composes constructs from ``mme_constructs``."""
