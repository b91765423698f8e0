package org.regnetykit.core;

/** One of the top-k classes: label, its index in the model's output, and its probability. */
public final class Prediction {
    public final String label;
    public final int index;
    public final double probability;

    public Prediction(String label, int index, double probability) {
        this.label = label;
        this.index = index;
        this.probability = probability;
    }

    @Override
    public String toString() {
        return String.format(java.util.Locale.ROOT, "%s %.1f%%", label, 100 * probability);
    }
}
