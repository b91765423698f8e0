"""Reference Keras models: the RegNetY design space, the zoo registry, weight import."""
