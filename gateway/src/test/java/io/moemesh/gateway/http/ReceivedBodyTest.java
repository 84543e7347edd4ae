package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import jakarta.servlet.ServletInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.springframework.mock.web.MockHttpServletRequest;

/** A received body held until its handler parsed it, and then let go of with its permit and held bytes. */
class ReceivedBodyTest {

    @Test
    void close_givesBackItsBytes_andLetsGoOfThem_aReadAfterItFails() throws IOException {
        HeldBodyBytes held = new HeldBodyBytes(100);
        byte[] bytes = "{}x".getBytes(StandardCharsets.US_ASCII);
        assertThat(held.take(bytes.length)).isTrue();
        ReceivedBody body = new ReceivedBody(bytes, 2, () -> { }, held);
        ServletInputStream in = body.wrap(new MockHttpServletRequest()).getInputStream();
        assertThat(in.read()).isEqualTo('{');

        body.close();

        assertThat(held.held()).isEqualTo(1);
        // The container keeps the request until its response ends: the bytes must not stay reachable through it.
        assertThatThrownBy(in::read).isInstanceOf(IOException.class).hasMessageContaining("given back");
        assertThatThrownBy(() -> in.read(new byte[4], 0, 4)).isInstanceOf(IOException.class);
    }
}
