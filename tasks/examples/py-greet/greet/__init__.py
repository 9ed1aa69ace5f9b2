from greet.hello import greeting
