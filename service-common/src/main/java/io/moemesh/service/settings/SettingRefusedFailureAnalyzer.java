package io.moemesh.service.settings;

import java.util.Locale;
import java.util.regex.Pattern;
import org.springframework.boot.diagnostics.AbstractFailureAnalyzer;
import org.springframework.boot.diagnostics.FailureAnalysis;

/**
 * Reports a start that failed on a {@link SettingRefusedException}, wherever it is in the cause chain, as Spring
 * Boot reports a binding failure: "APPLICATION FAILED TO START", the refusal's message as the description and the
 * setting to change as the action. Without it Spring Boot logs "Application run failed" with the whole chain of
 * bean creation exceptions (50 to 150 lines, the message in the last "Caused by"), which is what {@code kubectl
 * logs} and {@code moemesh up} show of the failed start. Registered in META-INF/spring.factories under
 * {@code org.springframework.boot.diagnostics.FailureAnalyzer}, where Spring Boot's FailureAnalyzers look (Spring
 * Boot 4 how-to "Create Your Own FailureAnalyzer", docs.spring.io/spring-boot/how-to/application.html); every
 * service has service-common on its class path.
 */
public final class SettingRefusedFailureAnalyzer extends AbstractFailureAnalyzer<SettingRefusedException> {
    /** A property name as the services' settings spell them, which has an environment variable of its own. */
    private static final Pattern PROPERTY = Pattern.compile("[a-z0-9]+(\\.[a-z0-9-]+)+");

    @Override
    protected FailureAnalysis analyze(Throwable rootFailure, SettingRefusedException cause) {
        return new FailureAnalysis(cause.getMessage(), action(cause.setting()), cause);
    }

    /** What to change: the setting, with its environment variable (the chart's and {@code moemesh up}'s way in). */
    static String action(String setting) {
        String env = PROPERTY.matcher(setting).matches()
                // The spelling the docs and the chart use (dots and dashes to underscores), which Spring Boot binds.
                ? " (environment variable " + setting.replace('.', '_').replace('-', '_').toUpperCase(Locale.ROOT) + ")"
                : "";
        return "Change " + setting + env + ", or what it is checked against, as the description says; then start "
                + "the service again.";
    }
}
