package org.regnetykit.core;

/**
 * A model, its metadata or an input the core cannot use. The message names the problem and what to do,
 * in one sentence the app can show as it is.
 */
public class ModelException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ModelException(String message) {
        super(message);
    }
}
