package io.moemesh.cli.bench.serve;

import io.grpc.Status;
import java.net.ConnectException;
import java.net.UnknownHostException;
import java.net.http.HttpConnectTimeoutException;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Why a call to the server failed, as one short line for the bench's output: the HTTP client's connect failure
 * carries no message of its own ({@code null}), and a gRPC status's text holds its cause's stack trace, so both name
 * the cause found in the exception's chain instead ("connection refused", "unknown host h", "connect timed out").
 */
final class ConnectionFailures {
    private static final Pattern CONNECT_KIND = Pattern.compile(
            "(?i)(connection refused|connection timed out|no route to host|network is unreachable|connection reset)");

    private ConnectionFailures() {
    }

    /** The cause of {@code e}: the connect failure in its chain if there is one, else its innermost message. */
    static String describe(Throwable e) {
        boolean connectFailed = false;
        String connect = null;
        String innermost = null;
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            String m = t.getMessage() == null || t.getMessage().isBlank() ? null : firstLine(t.getMessage());
            if (t instanceof UnknownHostException) {
                return "unknown host" + (m == null ? "" : " " + m.replaceFirst(":.*$", ""));
            }
            if (t instanceof HttpConnectTimeoutException || t.getClass().getSimpleName().equals("ConnectTimeoutException")) {
                return "connect timed out";
            }
            if (t instanceof ConnectException) {
                // Netty's "finishConnect(..) failed with error(-111): Connection refused: /127.0.0.1:1": the kind
                connectFailed = true;
                Matcher kind = m == null ? null : CONNECT_KIND.matcher(m);
                if (connect == null && kind != null && kind.find()) {
                    connect = kind.group(1).toLowerCase(Locale.ROOT);
                }
            }
            if (m != null) {
                innermost = m;
            }
        }
        if (connectFailed) {
            // java.net.http's refused connect is a ConnectException with no message (its cause: a
            // ClosedChannelException, none either)
            return connect != null ? connect : innermost != null ? innermost : "connection refused";
        }
        return innermost != null ? innermost : e.getClass().getSimpleName();
    }

    /** A gRPC status in one line: its code, then its cause (a connection failure) or else its description. */
    static String describe(Status s) {
        if (s.getCause() != null) {
            return s.getCode() + " (" + describe(s.getCause()) + ")";
        }
        return s.getCode() + (s.getDescription() == null ? "" : ": " + firstLine(s.getDescription()));
    }

    private static String firstLine(String s) {
        int nl = s.indexOf('\n');
        return (nl < 0 ? s : s.substring(0, nl)).strip();
    }
}
