//! `other-world`: a valid component of a different world (it exports `greet`, not the
//! job-plugin functions), used to check that the host rejects it with a clear reason.

wit_bindgen::generate!({
    inline: "
        package jobhost-test:other;
        world greeter {
            export greet: func(name: string) -> string;
        }
    ",
});

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

export!(Greeter);
