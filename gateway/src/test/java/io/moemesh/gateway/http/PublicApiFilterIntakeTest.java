package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.gateway.auth.ApiKeys;
import io.moemesh.gateway.serving.IntakeLimiter;
import io.moemesh.gateway.serving.OverloadedException;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.ReadListener;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.http.HttpServletRequestWrapper;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.springframework.mock.web.MockFilterChain;
import org.springframework.mock.web.MockHttpServletRequest;
import org.springframework.mock.web.MockHttpServletResponse;
import tools.jackson.databind.json.JsonMapper;

/** The filter's intake of a body, on real limits and a mock container request. */
class PublicApiFilterIntakeTest {
    private final IntakeLimiter intake = new IntakeLimiter(10, 1);
    private final List<String> charged = new ArrayList<>();

    private PublicApiFilter filter(long maxHeldBytes, boolean overRate) {
        return new PublicApiFilter(ApiKeys.none(), JsonMapper.builder().build(), 1_000, intake, () -> 0L,
                Duration.ofSeconds(30), maxHeldBytes, tenant -> {
                    charged.add(tenant);
                    if (overRate) {
                        throw new OverloadedException("tenant " + tenant + " exceeds its rate limit", 1);
                    }
                });
    }

    private static MockHttpServletRequest post(String path, String body) {
        MockHttpServletRequest r = new MockHttpServletRequest("POST", path);
        r.setRequestURI(path);
        r.setServletPath(path);
        r.setContentType("application/json");
        r.setContent(body.getBytes(StandardCharsets.US_ASCII));
        return r;
    }

    /** A large body whose request cannot go asynchronous (the container refuses): its permit is given back. */
    @Test
    void receive_asyncStartFails_givesBackTheLargePermitAndHeldBytes() {
        MockHttpServletRequest mock = post("/v1/completions", "{\"prompt\":\"");
        // Declares more than has arrived, so the rest would be received asynchronously.
        HttpServletRequestWrapper req = new HttpServletRequestWrapper(mock) {
            @Override
            public long getContentLengthLong() {
                return 500;
            }

            @Override
            public AsyncContext startAsync(jakarta.servlet.ServletRequest q, jakarta.servlet.ServletResponse s) {
                throw new IllegalStateException("async not supported");
            }
        };
        PublicApiFilter f = filter(10_000, false);
        assertThatThrownBy(() -> f.doFilter(req, new MockHttpServletResponse(), new MockFilterChain()))
                .hasMessageContaining("async not supported");
        assertThat(intake.largeInIntake()).isZero();
        assertThat(f.heldBodyBytes()).isZero();
    }

    /**
     * A small body is charged to its tenant's rate when it starts, before it is whole: one past its rate is refused
     * then, so a body that never completes is charged too. The refusal of a body the container holds whole keeps the
     * connection (no Connection: close), the body dropped.
     */
    @Test
    void smallBody_chargedWhenItStarts_pastTheRate429_keepsTheConnectionWhenTheBodyIsWhole() throws Exception {
        MockHttpServletResponse res = new MockHttpServletResponse();
        MockFilterChain chain = new MockFilterChain();
        filter(10_000, true).doFilter(post("/v1/completions", "{}"), res, chain);
        assertThat(charged).containsExactly("default");
        assertThat(res.getStatus()).isEqualTo(429);
        assertThat(res.getHeader("Connection")).isNull();
        assertThat(res.getContentAsString()).contains("exceeds its rate limit");
        assertThat(chain.getRequest()).as("the handler never ran").isNull();
    }

    /** A body refused for the held bytes after it was read whole keeps its connection too. */
    @Test
    void wholeBody_refusedForTheHeldBytes_keepsTheConnection() throws Exception {
        MockHttpServletResponse res = new MockHttpServletResponse();
        filter(3, false).doFilter(post("/v1/completions", "{\"a\":1}"), res, new MockFilterChain());
        assertThat(res.getStatus()).isEqualTo(429);
        assertThat(res.getHeader("Connection")).isNull();
        assertThat(res.getContentAsString()).contains(HeldBodyBytes.SETTING);
    }

    /** Only the generation requests are charged: a body to another /v1 path costs its tenant nothing. */
    @Test
    void bodyToAnotherV1Path_isNotCharged() throws Exception {
        MockFilterChain chain = new MockFilterChain();
        filter(10_000, true).doFilter(post("/v1/models", "{}"), new MockHttpServletResponse(), chain);
        assertThat(charged).isEmpty();
        assertThat(chain.getRequest()).isNotNull();
    }

    /**
     * A body received asynchronously is handed over whole, and the intake (which Tomcat keeps as the request's read
     * listener until the request is recycled, after the response) keeps no reference to it or its read buffer: the
     * bytes are let go of when the handler closes the body, not when the response ends.
     */
    @Test
    void asyncBody_handedOver_intakeKeepsNoReferenceToItsBytes() throws Exception {
        byte[] data = "{\"prompt\":\"x\"}".getBytes(StandardCharsets.US_ASCII);
        MockHttpServletRequest mock = post("/v1/completions", "");
        mock.setAsyncSupported(true);
        AtomicReference<ReadListener> listener = new AtomicReference<>();
        int[] pos = {0};
        ServletInputStream arriving = new ServletInputStream() {
            @Override
            public boolean isFinished() {
                return pos[0] >= data.length;
            }

            @Override
            public boolean isReady() {
                return !isFinished();
            }

            @Override
            public void setReadListener(ReadListener l) {
                listener.set(l);
            }

            @Override
            public int read() {
                return isFinished() ? -1 : data[pos[0]++];
            }
        };
        HttpServletRequestWrapper req = new HttpServletRequestWrapper(mock) {
            @Override
            public long getContentLengthLong() {
                return data.length;
            }

            @Override
            public ServletInputStream getInputStream() {
                return arriving;
            }
        };
        PublicApiFilter f = filter(10_000, false);
        f.doFilter(req, new MockHttpServletResponse(), new MockFilterChain());
        BodyIntake intake = (BodyIntake) listener.get();
        assertThat(intake).as("the body is received asynchronously").isNotNull();
        assertThat(intake.holdsBody()).isTrue();

        intake.onDataAvailable();
        intake.onAllDataRead();

        assertThat(mock.getAttribute(BodyIntake.RECEIVED_ATTRIBUTE)).isInstanceOf(ReceivedBody.class);
        assertThat(intake.holdsBody()).as("the intake let go of the body and its read buffer").isFalse();
        ((ReceivedBody) mock.getAttribute(BodyIntake.RECEIVED_ATTRIBUTE)).close();
        assertThat(f.heldBodyBytes()).isZero();
    }

    /**
     * The container's own wait for the next bytes timed out (server.tomcat.connection-timeout shorter than the
     * body's deadline): the client was too slow, 408 naming the setting, not 400 "could not be read".
     */
    @Test
    void containerReadTimeout_midBody_is408NamingTheConnectionTimeout() throws Exception {
        MockHttpServletRequest mock = post("/v1/completions", "");
        mock.setAsyncSupported(true);
        AtomicReference<ReadListener> listener = new AtomicReference<>();
        ServletInputStream nothingYet = new ServletInputStream() {
            @Override
            public boolean isFinished() {
                return false;
            }

            @Override
            public boolean isReady() {
                return false;
            }

            @Override
            public void setReadListener(ReadListener l) {
                listener.set(l);
            }

            @Override
            public int read() {
                return -1;
            }
        };
        HttpServletRequestWrapper req = new HttpServletRequestWrapper(mock) {
            @Override
            public long getContentLengthLong() {
                return 5;
            }

            @Override
            public ServletInputStream getInputStream() {
                return nothingYet;
            }
        };
        MockHttpServletResponse res = new MockHttpServletResponse();
        filter(10_000, false).doFilter(req, res, new MockFilterChain());
        assertThat(listener.get()).as("the body is received asynchronously").isNotNull();

        listener.get().onError(new SocketTimeoutException());

        assertThat(res.getStatus()).isEqualTo(408);
        assertThat(res.getContentAsString()).contains("request_timeout", "server.tomcat.connection-timeout");
    }
}
