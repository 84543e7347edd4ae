package io.moemesh.service.settings;

/**
 * A setting refused when a service starts, by a check that needs what only the running service knows (the JVM's
 * heap, the model, a directory's owner): thrown from a bean's factory method rather than from a settings record,
 * which Spring Boot would report as a binding failure. {@link SettingRefusedFailureAnalyzer} turns it into Spring
 * Boot's "APPLICATION FAILED TO START" report, its message as the description, instead of the whole chain of bean
 * creation exceptions with the one useful sentence at the bottom. A caller's mistake, hence an
 * {@link IllegalArgumentException}: the checks threw that before, and what catches them still does.
 */
public final class SettingRefusedException extends IllegalArgumentException {
    private final String setting;

    /**
     * @param setting the property to change, e.g. {@code moemesh.kvcache.dram-bytes}
     * @param message what is wrong and what would do, naming {@code setting} (the report's description)
     */
    public SettingRefusedException(String setting, String message) {
        this(setting, message, null);
    }

    /**
     * @param setting the property to change
     * @param message what is wrong and what would do, naming {@code setting}
     * @param cause   what the check found, or null
     */
    public SettingRefusedException(String setting, String message, Throwable cause) {
        super(message, cause);
        if (setting == null || setting.isBlank()) {
            throw new IllegalArgumentException("a refused setting needs the property's name, got " + setting);
        }
        this.setting = setting;
    }

    /** The property to change. */
    public String setting() {
        return setting;
    }
}
